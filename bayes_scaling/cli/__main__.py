"""``python -m bayes_scaling.cli``: the ``bayes-scaling`` command."""

import sys

from bayes_scaling.cli import main
from bayes_scaling.threads import serial_blas, single_blas_environment

# NumPy is loaded by now (unlike under the console script): the limit is set for this process by threadpoolctl,
# and the variables for the processes it starts (see bayes_scaling.threads).
if single_blas_environment():
    with serial_blas():
        code = main()
else:
    code = main()
sys.exit(code)
