#!/bin/sh
# The image's entry point: a CLI when the command names one, else our Lambda runtime loop
# (python -m archiver.runtime), which speaks Lambda's Runtime API itself. Lambda passes
# the image's CMD, or the function's ImageConfig Command (a handler name such as
# archiver.lambda_handler.handler), as arguments; the loop serves the archiver whatever
# they name.
set -e
case "$1" in
  archiver|replayer)
    exec "$@"
    ;;
  *)
    exec python -m archiver.runtime
    ;;
esac
