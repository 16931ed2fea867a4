"""The demo's generated data: a synthesizer (``synth``), a tagged sound corpus with realistic tag noise
(``corpus``), small look-alikes of the three downstream datasets in their real layouts
(``downstream``), and the whole data folder ``make demo`` runs on (``data``)."""
