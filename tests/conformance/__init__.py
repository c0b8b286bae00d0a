"""Conformance suite: does ``runner predict`` run any bioimage.io package as its author ran it?

A generator (:mod:`tests.conformance.build`) writes small packages with bioimageio.spec's Python API (format
0.5 with the 0.5 classes, format 0.4 with the 0.4 classes), one per :class:`~tests.conformance.cases.Case`,
each exercising rdf features a runner must honour. :mod:`tests.conformance.harness` runs ``runner predict``
through the CLI on TIFF files and compares its outputs with bioimageio.core's prediction of the same package
and with the package's test output (computed independently by :mod:`tests.conformance.reference`).
``python -m tests.conformance.table`` runs every case and prints the feature table of docs/COMPATIBILITY.md.
"""
