"""The leaves every stage imports: the schema, the defaults, the statistics, the cell record, the
machine's description and load. No pandas, no framework.
"""
