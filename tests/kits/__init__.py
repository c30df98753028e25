"""What the tests share, none of it a test: builders of the real gate and its configuration,
fakes at the edges, servers that misbehave on purpose, and waits with a guard.

    gate            ``make_gate``: the real Gate from a configuration written as TOML
    journal         tickets, decisions, configurations and a journal over a SQLite file
    waiting         ``wait_for`` and sources on a thread, with a guard instead of a goal
    loopback        httpx's calls for the servers on loopback, without loading the CA bundle
    gpio            gpiozero MockFactory outputs and what their pins did
    run             a systemd notify socket and workers that crash or hang on demand
    sim, sync       the simulator's token; a model of vivenu's listing for property tests
    hostile_server  a vivenu-shaped server that lies or stalls
    kiosk, browser  a gate with its kiosk page; Chromium through Playwright
    mesh, pg        a throwaway mosquitto and PostgreSQL
    venue           gates obeying a supervisor's signed commands
    picamera2_fake  a recording stand-in for picamera2
"""
