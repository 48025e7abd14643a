from replayer.cli import console

console()
