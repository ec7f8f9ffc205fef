"""Result caching: keys, the in-process ring buffer, the fail-open Redis cache and single-flight.

The service uses :class:`faceflow.cache.tiered.ResultCache` (built with ``from_settings``) and
reports metrics through a :class:`faceflow.cache.observer.CacheObserver`. This package imports
neither FastAPI nor a metrics library.
"""
