"""Built-in analyzers: zones (intrusion, loitering, crowd, line crossing), pose (fall, fight), weapon confirmation."""
