"""The pytheus test suite (a package, so that tests.servers and the sub-suites import cleanly)."""
