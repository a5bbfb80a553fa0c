"""Modals: the forms behind `/deploy`, `/flag`, `/dbrole` and `/incident declare` typed bare.

A form is plain data (forms.py), rendered to a Slack view (render.py); its
choices come from the configuration and from AWS (options.py); a submission's
state is read back and checked as hostile input (state.py). What a submission
does is the typed command's own path: the handlers convert the values into the
command the typed text would have parsed into.
"""
