//! Drains a durable cairn run on tokio, classifies its outcome and resumes it after a crash.
