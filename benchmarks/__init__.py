"""mobexport.benchmarks"""
