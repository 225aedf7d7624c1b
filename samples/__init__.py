"""Real MNIST digits and realistic uploads made from them, for the tests and the benchmarks.

Not part of the installed package: a source checkout's test and benchmark data, read from
`../shared/data/mnist` when it is beside the checkout, else from the committed sample.
"""
