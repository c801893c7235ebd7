"""The server's plumbing: ``settings`` (flags, environment, ceilings), ``storage`` (the bounded export
area, the decoded-frames pool), ``hub`` (Hub ids visitors type, the allow-list) and ``runtime`` (process
set-up; in process or under ``spaces.GPU``). Light: no Gradio, and ``settings`` / ``runtime`` no torch."""
