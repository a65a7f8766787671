//! A faithful local imitation of the six Purple Flea services, with fault injection.
