"""budget-monitor: special-fund execution monitoring and year-end self-evaluation."""

__version__ = "0.1.0"
