"""The one job model: inputs, endpoint, job, wire format, plan, runner, driver."""
