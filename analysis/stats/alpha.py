"""The error rate every interval, test and verdict of the analysis is read at: the cells'
confidence sequences and median intervals, Holm's adjustment, the regime test, the
controls' intervals and a claim's default. Defined once, here."""

ALPHA = 0.05
