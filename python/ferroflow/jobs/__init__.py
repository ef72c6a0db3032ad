"""Jobs and jobboards (TaskFlow's ``taskflow.jobs``): work posted by one program, claimed and run
by conductors (`ferroflow.conductors`) on one host (``sqlite``) or many (``postgres``).

``ferroflow.jobs.backends.fetch(name, conf, persistence=...)`` builds a board; see
`ferroflow.jobs.base` for the API and `ferroflow.jobs.sql_board` for how claims work.
"""
