"""The screens: one Python class per screen here, its layout in ``ui/kv/<screen>.kv``."""
