"""``python -m postmix.cli``: what ``accelerate launch`` runs in every training process."""

from postmix.cli import main

main()
