"""mobexport.devices"""
