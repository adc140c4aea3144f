//! The invocation pipeline of holactl: functions, pools, executions, metrics.
