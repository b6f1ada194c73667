"""Standards administration: the versioned catalogue, conversion rules as data with a maker-checker lifecycle,
the seed loader (`creditnode standards load`) and the handbook endpoint. The pure engine is `node.rules`."""
