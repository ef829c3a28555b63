package media

// Open lets media's own tests open sources without a Gate: they test the
// sources, not the announcement. Only tests of this package see it.
var Open = open
