"""What is written for people: the markdown report, tables, plots, comparisons, DAWNBench and MLPerf exports."""
