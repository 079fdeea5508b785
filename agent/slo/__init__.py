"""SLOs: error budgets and multi-window burn rates, evaluated and generated as rules."""
