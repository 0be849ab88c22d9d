"""The chart's fixtures (helm, installed on first use) for the rules and the dashboard."""

from tests.chart.conftest import helm, tools

__all__ = ["helm", "tools"]
