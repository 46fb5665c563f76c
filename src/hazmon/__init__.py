"""hazmon: connect hazardous-chemical enterprises to the Sichuan risk-monitoring platform."""

__version__ = "0.1.0"
