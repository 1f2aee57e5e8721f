"""mobexport.export"""
