//! Event-sourced DAG task queue: a synchronous state machine that does no I/O.
