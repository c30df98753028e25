"""The decision: a pure function of ticket, history, policy, direction and time."""
