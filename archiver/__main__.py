from archiver.cli import console

console()
