"""mobexport.export: the export pipeline's modules.

``mobexport.export`` is also the Python API's function (``mobexport.export(model,
target, ...)``, see :mod:`mobexport.api`). Once this package is imported, Python
binds the name ``export`` of ``mobexport`` to this module, so the module is made
callable: calling it is calling :func:`mobexport.api.export`.
"""

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from mobexport.api import export

        return export(*args, **kwargs)

    @property
    def __signature__(self):
        import inspect

        from mobexport.api import export

        return inspect.signature(export)


sys.modules[__name__].__class__ = _CallableModule
