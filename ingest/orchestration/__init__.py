"""One run from plan to report, wherever its workers run.

:mod:`.flow` is the sequence (plan → launch → watch → report) over a ``Launcher``:
:mod:`.local` (processes on this machine) or :mod:`.kubernetes` (an Indexed Job).
:mod:`.steps` does the state store's part, :mod:`.progress` models and shows the run's
progress.
"""
