"""The benchmarks behind ``warden bench``: one module per benchmark, each with ``run(...)`` and
``main(argv)``, and ``figures`` the measuring and printing they share."""
