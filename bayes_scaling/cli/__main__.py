"""``python -m bayes_scaling.cli``: the ``bayes-scaling`` command."""

import sys
from contextlib import nullcontext

from bayes_scaling.cli import main
from bayes_scaling.threads import serial_blas, single_blas_environment

# NumPy is loaded by now (unlike under the console script): the limit is set for this process by threadpoolctl,
# and the variables for the processes it starts (see bayes_scaling.threads).
with serial_blas() if single_blas_environment() else nullcontext():
    code = main()
sys.exit(code)
