"""mobexport.kernels"""
