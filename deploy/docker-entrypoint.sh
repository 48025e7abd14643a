#!/bin/sh
# The image's entry point: a CLI when the command names one, else the Lambda runtime
# interface client serving the handler named by the command (Lambda passes it as CMD).
set -e
case "$1" in
  archiver|replayer)
    exec "$@"
    ;;
  *)
    exec python -m awslambdaric "$@"
    ;;
esac
