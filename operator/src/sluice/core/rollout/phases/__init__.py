"""One module per phase, each with `handle(decision)`: what that phase does with this round's observations."""
