"""Registration with transformers, deferred to the first use of its Auto classes, so that `import vivit` (and the
data-loading modules that data-loader workers import) do not pay for transformers' model stack (seconds a process).

`install()` (run by `import vivit`) patches the entry points of transformers' Auto classes, now if their modules are
loaded and otherwise right after they load: `AutoConfig.from_pretrained` / `for_model`, every Auto model class's
`from_pretrained` / `from_config` (so `pipeline()` too) and `AutoImageProcessor.from_pretrained`. The first call of any
of them restores the originals, runs `vivit.models.auto.register()` and proceeds. Importing `vivit.models.modeling`
registers at once (it has loaded transformers' model stack anyway). Patching only assigns attributes; no import runs
inside another module's import.
"""

from __future__ import annotations

import functools
import importlib.abc
import sys
import threading

# module -> (class, its classmethods that look a model type up)
_ENTRY_POINTS = {
    "transformers.models.auto.configuration_auto": ("AutoConfig", ("from_pretrained", "for_model")),
    "transformers.models.auto.auto_factory": ("_BaseAutoModelClass", ("from_pretrained", "from_config")),
    "transformers.models.auto.image_processing_auto": ("AutoImageProcessor", ("from_pretrained",)),
}
_lock = threading.RLock()
_registered = False
_patched: list[tuple[type, str, classmethod]] = []


def ensure_registered() -> None:
    """Register vivit's classes with transformers (once per process) and take the patches away."""
    global _registered
    with _lock:
        if _registered:
            return
        _registered = True
        while _patched:
            cls, name, original = _patched.pop()
            setattr(cls, name, original)
        from vivit.models import auto

        auto.register()


def _patch(module) -> None:
    class_name, methods = _ENTRY_POINTS[module.__name__]
    cls = getattr(module, class_name)
    for name in methods:
        original = cls.__dict__[name]

        @functools.wraps(original.__func__)
        def first_call(klass, *args, _function=original.__func__, **kwargs):
            ensure_registered()
            return _function(klass, *args, **kwargs)

        _patched.append((cls, name, original))
        setattr(cls, name, classmethod(first_call))


class _PatchOnLoad(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of a watched module so that the patch follows its execution."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _ENTRY_POINTS or _registered:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        exec_module = spec.loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            with _lock:
                if not _registered:
                    _patch(module)

        spec.loader.exec_module = exec_then_patch  # this spec's own loader object
        return spec


def install() -> None:
    with _lock:
        if _registered or any(isinstance(f, _PatchOnLoad) for f in sys.meta_path):
            return
        for name in _ENTRY_POINTS:
            if name in sys.modules:
                _patch(sys.modules[name])
        sys.meta_path.insert(0, _PatchOnLoad())
