//! Recurring cairn jobs with a persistent circuit breaker and a force-gated resume.
