"""The one door between the service and the engine: what both sides must agree on.

The job spec with its defaults and rules, the device catalogue, error codes, the request and the
messages between a worker and its engine process, the launcher that confines them, the static
checks of uploaded files, and the headline fields of the reports the engine and a sweep's collector
write. Pure Python (pydantic, no TensorFlow, no engine code): the API process imports this package
and nothing else of the engine side (`lint-imports` holds both to it).
"""
