"""Development kit: local servers and generated stream traffic for tests, the demo and bench/.

Not part of the installed package.
"""
