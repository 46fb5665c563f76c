"""hazmon-tracker: the province-side feed tracker (dedup, freshness, completeness, authenticity; D7)."""
