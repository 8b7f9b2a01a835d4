"""Running a front end as a long-lived service: configuration file, logs, metrics, reloads."""
