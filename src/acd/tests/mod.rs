//! Tests of the ACD core: unit tests per behaviour, property tests over
//! random event sequences, configuration errors, and the simulator.

mod config;
mod harness;
mod props;
mod sim;
mod unit;
