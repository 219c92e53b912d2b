"""Synthetic demo retailer with ground truth (see :mod:`accord.demo.generator`).

``generate(DemoSpec(...), out_dir)`` writes stores, catalogue, a CRM export, POS receipts, Segment-spec
events and ``truth.csv`` (which identifier belongs to which person), deterministically from a seed.
The data set is used to load demo data and to measure identity resolution.
"""
