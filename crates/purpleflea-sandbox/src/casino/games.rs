//! The casino games: parameter checks, win probability, payout and outcome from rolls.

use serde_json::{Value, json};

use crate::http::{ApiError, num, round2, round4, text};

/// The games the sandbox plays, by URL slug.
pub(crate) const SLUGS: [&str; 7] = [
    "coin-flip",
    "dice",
    "multiplier",
    "crash",
    "roulette",
    "custom",
    "plinko",
];

const RED: [u32; 18] = [
    1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36,
];

/// A validated bet on one game.
#[derive(Debug, Clone)]
pub(crate) enum Game {
    CoinFlip {
        heads: bool,
    },
    Dice {
        over: bool,
        threshold: f64,
    },
    Multiplier {
        target: f64,
    },
    Crash {
        cash_out_at: f64,
    },
    Roulette {
        bet_type: String,
        bet_value: Option<u32>,
    },
    Custom {
        win_probability: f64,
    },
    Plinko {
        rows: usize,
        risk: Risk,
    },
}

/// Plinko risk level.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    fn name(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

fn invalid(param: &str, message: &str) -> ApiError {
    ApiError::new(400, &format!("invalid_{param}")).msg(message)
}

impl Game {
    /// Parses the game-specific fields of a bet body.
    pub(crate) fn parse(slug: &str, body: &Value) -> Result<Game, ApiError> {
        match slug {
            "coin-flip" => match text(body, "side") {
                Some("heads") => Ok(Game::CoinFlip { heads: true }),
                Some("tails") => Ok(Game::CoinFlip { heads: false }),
                _ => Err(invalid("side", "side must be 'heads' or 'tails'")),
            },
            "dice" => {
                let over = match text(body, "direction") {
                    Some("over") => true,
                    Some("under") => false,
                    _ => return Err(invalid("direction", "direction must be 'over' or 'under'")),
                };
                let threshold = num(body, "threshold")
                    .filter(|t| (1.0..=99.0).contains(t))
                    .ok_or_else(|| {
                        invalid("threshold", "threshold must be a number from 1 to 99")
                    })?;
                Ok(Game::Dice { over, threshold })
            }
            "multiplier" => num(body, "target_multiplier")
                .filter(|t| (1.01..=1000.0).contains(t))
                .map(|target| Game::Multiplier { target })
                .ok_or_else(|| {
                    invalid(
                        "target_multiplier",
                        "target_multiplier must be a number from 1.01 to 1000",
                    )
                }),
            "crash" => num(body, "cash_out_at")
                .filter(|t| (1.01..=100.0).contains(t))
                .map(|cash_out_at| Game::Crash { cash_out_at })
                .ok_or_else(|| {
                    invalid(
                        "cash_out_at",
                        "cash_out_at must be a number from 1.01 to 100",
                    )
                }),
            "roulette" => {
                let bet_type = text(body, "bet_type").unwrap_or("");
                let known = [
                    "number", "red", "black", "odd", "even", "high", "low", "dozen_1", "dozen_2",
                    "dozen_3", "column_1", "column_2", "column_3",
                ];
                if !known.contains(&bet_type) {
                    return Err(invalid(
                        "bet_type",
                        "bet_type must be number, red, black, odd, even, high, low, dozen_1..3 or column_1..3",
                    ));
                }
                let bet_value = if bet_type == "number" {
                    let v = num(body, "bet_value")
                        .filter(|v| v.fract() == 0.0 && (0.0..=36.0).contains(v))
                        .ok_or_else(|| {
                            invalid("bet_value", "bet_value must be an integer from 0 to 36")
                        })?;
                    Some(v as u32)
                } else {
                    None
                };
                Ok(Game::Roulette {
                    bet_type: bet_type.to_owned(),
                    bet_value,
                })
            }
            "custom" => num(body, "win_probability")
                .filter(|p| (1.0..=99.0).contains(p))
                .map(|win_probability| Game::Custom { win_probability })
                .ok_or_else(|| {
                    invalid(
                        "win_probability",
                        "win_probability must be a number from 1 to 99",
                    )
                }),
            "plinko" => {
                let rows = match body.get("rows") {
                    None | Some(Value::Null) => 16,
                    Some(v) => match v.as_u64() {
                        Some(r @ (8 | 12 | 16)) => r as usize,
                        _ => return Err(invalid("rows", "rows must be 8, 12 or 16")),
                    },
                };
                let risk = match text(body, "risk") {
                    None if !crate::http::present(body, "risk") => Risk::Medium,
                    Some("low") => Risk::Low,
                    Some("medium") => Risk::Medium,
                    Some("high") => Risk::High,
                    _ => return Err(invalid("risk", "risk must be low, medium or high")),
                };
                Ok(Game::Plinko { rows, risk })
            }
            _ => Err(ApiError::new(404, "game_not_found").msg(format!("Unknown game '{slug}'"))),
        }
    }

    /// The stated probability of a win, used by the Kelly gate (in 0..1).
    pub(crate) fn win_probability(&self) -> f64 {
        match self {
            Game::CoinFlip { .. } => 0.5,
            Game::Dice { over, threshold } => {
                if *over {
                    (100.0 - threshold) / 100.0
                } else {
                    threshold / 100.0
                }
            }
            Game::Multiplier { target } => (0.995 / target).min(1.0),
            Game::Crash { cash_out_at } => (0.995 / cash_out_at).min(1.0),
            Game::Roulette { bet_type, .. } => match bet_type.as_str() {
                "number" => 1.0 / 37.0,
                t if t.starts_with("dozen") || t.starts_with("column") => 12.0 / 37.0,
                _ => 18.0 / 37.0,
            },
            Game::Custom { win_probability } => win_probability / 100.0,
            // Plinko always "wins" some multiplier; the gate treats it as an even bet.
            Game::Plinko { .. } => 0.5,
        }
    }

    /// The gross multiplier paid on a win (plinko: the mean of its table, for the gate).
    pub(crate) fn payout(&self) -> f64 {
        match self {
            Game::CoinFlip { .. } => 1.99,
            Game::Dice { .. } => round4(0.995 / self.win_probability()),
            Game::Multiplier { target } => *target,
            Game::Crash { cash_out_at } => *cash_out_at,
            Game::Roulette { bet_type, .. } => match bet_type.as_str() {
                "number" => round4(35.0 * 0.995),
                t if t.starts_with("dozen") || t.starts_with("column") => round4(3.0 * 0.995),
                _ => round4(2.0 * 0.995),
            },
            Game::Custom { win_probability } => round4(100.0 / win_probability * 0.995),
            Game::Plinko { .. } => 1.99,
        }
    }

    /// Plays the game: `roll` is the bet's main roll, `row_roll(i)` the roll of plinko row
    /// `i`. Returns (won, gross multiplier, result object).
    pub(crate) fn play(&self, roll: f64, row_roll: impl Fn(usize) -> f64) -> (bool, f64, Value) {
        match self {
            Game::CoinFlip { heads } => {
                let outcome_heads = roll < 50.0;
                let won = outcome_heads == *heads;
                let side = |h: bool| if h { "heads" } else { "tails" };
                (
                    won,
                    1.99,
                    json!({"side": side(*heads), "outcome": side(outcome_heads), "roll": roll}),
                )
            }
            Game::Dice { over, threshold } => {
                let value = roll.floor() + 1.0;
                let won = if *over {
                    value > *threshold
                } else {
                    value < *threshold
                };
                (
                    won,
                    self.payout(),
                    json!({
                        "direction": if *over { "over" } else { "under" },
                        "threshold": threshold,
                        "value": value,
                        "roll": roll,
                    }),
                )
            }
            Game::Multiplier { target } => {
                let crash = crash_point(roll);
                (
                    crash >= *target,
                    *target,
                    json!({"target_multiplier": target, "crash_point": crash, "roll": roll}),
                )
            }
            Game::Crash { cash_out_at } => {
                let crash = crash_point(roll);
                (
                    crash >= *cash_out_at,
                    *cash_out_at,
                    json!({"cash_out_at": cash_out_at, "crash_point": crash, "roll": roll}),
                )
            }
            Game::Roulette {
                bet_type,
                bet_value,
            } => {
                let n = ((roll * 37.0 / 100.0).floor() as u32).min(36);
                let red = RED.contains(&n);
                let won = match bet_type.as_str() {
                    "number" => Some(n) == *bet_value,
                    "red" => red,
                    "black" => n != 0 && !red,
                    "odd" => n != 0 && n % 2 == 1,
                    "even" => n != 0 && n.is_multiple_of(2),
                    "low" => (1..=18).contains(&n),
                    "high" => (19..=36).contains(&n),
                    "dozen_1" => (1..=12).contains(&n),
                    "dozen_2" => (13..=24).contains(&n),
                    "dozen_3" => (25..=36).contains(&n),
                    "column_1" => n != 0 && n % 3 == 1,
                    "column_2" => n != 0 && n % 3 == 2,
                    "column_3" => n != 0 && n.is_multiple_of(3),
                    _ => false,
                };
                let color = if n == 0 {
                    "green"
                } else if red {
                    "red"
                } else {
                    "black"
                };
                (
                    won,
                    self.payout(),
                    json!({"bet_type": bet_type, "bet_value": bet_value, "number": n, "color": color, "roll": roll}),
                )
            }
            Game::Custom { win_probability } => (
                roll < *win_probability,
                self.payout(),
                json!({"win_probability": win_probability, "roll": roll}),
            ),
            Game::Plinko { rows, risk } => {
                let path: Vec<&str> = (0..*rows)
                    .map(|i| if row_roll(i) < 50.0 { "R" } else { "L" })
                    .collect();
                let slot = path.iter().filter(|p| **p == "R").count();
                let multiplier = plinko_table(*rows, *risk).get(slot).copied().unwrap_or(0.2);
                (
                    true,
                    multiplier,
                    json!({
                        "rows": rows,
                        "risk": risk.name(),
                        "path": path,
                        "slot": slot,
                        "multiplier": multiplier,
                        "roll": roll,
                    }),
                )
            }
        }
    }
}

/// The crash curve shared by multiplier and crash.
pub(crate) fn crash_point(roll: f64) -> f64 {
    if roll >= 99.99 {
        10_000.0
    } else {
        round2(0.995 / (1.0 - roll / 100.0))
    }
}

/// The fixed plinko multiplier table (slot = number of rights).
pub(crate) fn plinko_table(rows: usize, risk: Risk) -> &'static [f64] {
    match (rows, risk) {
        (8, Risk::Low) => &[5.6, 2.1, 1.1, 1.0, 0.5, 1.0, 1.1, 2.1, 5.6],
        (8, Risk::Medium) => &[13.0, 3.0, 1.3, 0.7, 0.4, 0.7, 1.3, 3.0, 13.0],
        (8, Risk::High) => &[29.0, 4.0, 1.5, 0.3, 0.2, 0.3, 1.5, 4.0, 29.0],
        (12, Risk::Low) => &[
            10.0, 3.0, 1.6, 1.4, 1.1, 1.0, 0.5, 1.0, 1.1, 1.4, 1.6, 3.0, 10.0,
        ],
        (12, Risk::Medium) => &[
            33.0, 11.0, 4.0, 2.0, 1.1, 0.6, 0.3, 0.6, 1.1, 2.0, 4.0, 11.0, 33.0,
        ],
        (12, Risk::High) => &[
            170.0, 24.0, 8.1, 2.0, 0.7, 0.2, 0.2, 0.2, 0.7, 2.0, 8.1, 24.0, 170.0,
        ],
        (_, Risk::Low) => &[
            16.0, 9.0, 2.0, 1.4, 1.4, 1.2, 1.1, 1.0, 0.5, 1.0, 1.1, 1.2, 1.4, 1.4, 2.0, 9.0, 16.0,
        ],
        (_, Risk::Medium) => &[
            110.0, 41.0, 10.0, 5.0, 3.0, 1.5, 1.0, 0.5, 0.3, 0.5, 1.0, 1.5, 3.0, 5.0, 10.0, 41.0,
            110.0,
        ],
        (_, Risk::High) => &[
            1000.0, 130.0, 26.0, 9.0, 4.0, 2.0, 0.2, 0.2, 0.2, 0.2, 0.2, 2.0, 4.0, 9.0, 26.0,
            130.0, 1000.0,
        ],
    }
}

/// The public game list (`GET /games`). The list states 1.96 for coin-flip while a win
/// actually pays 1.99, as in production.
pub(crate) fn catalogue() -> Value {
    json!([
        {"id": "coin_flip", "slug": "coin-flip", "name": "Coin Flip", "endpoint": "POST /api/v1/games/coin-flip",
         "params": {"side": "heads|tails"}, "payout_multiplier": 1.96, "house_edge": "0.5%"},
        {"id": "dice", "slug": "dice", "name": "Dice", "endpoint": "POST /api/v1/games/dice",
         "params": {"direction": "over|under", "threshold": "1-99"}, "payout": "0.995 / win probability", "house_edge": "0.5%"},
        {"id": "multiplier", "slug": "multiplier", "name": "Multiplier", "endpoint": "POST /api/v1/games/multiplier",
         "params": {"target_multiplier": "1.01-1000"}, "house_edge": "0.5%"},
        {"id": "crash", "slug": "crash", "name": "Crash", "endpoint": "POST /api/v1/games/crash",
         "params": {"cash_out_at": "1.01-100"}, "house_edge": "0.5%"},
        {"id": "roulette", "slug": "roulette", "name": "Roulette", "endpoint": "POST /api/v1/games/roulette",
         "params": {"bet_type": "number|red|black|odd|even|high|low|dozen_1..3|column_1..3", "bet_value": "0-36"}, "house_edge": "0.5%"},
        {"id": "custom", "slug": "custom", "name": "Custom Odds", "endpoint": "POST /api/v1/games/custom",
         "params": {"win_probability": "1-99"}, "house_edge": "0.5%"},
        {"id": "plinko", "slug": "plinko", "name": "Plinko", "endpoint": "POST /api/v1/games/plinko",
         "params": {"rows": "8|12|16", "risk": "low|medium|high"}, "multipliers": "0.2x-1000x"}
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_payout_and_outcome() {
        let g = Game::parse("dice", &json!({"direction": "over", "threshold": 50})).ok();
        let Some(g) = g else {
            panic!("dice parses");
        };
        assert!((g.payout() - 1.99).abs() < 1e-9);
        assert!(g.play(50.0, |_| 0.0).0); // value 51 > 50
        assert!(!g.play(49.99, |_| 0.0).0); // value 50
    }

    #[test]
    fn crash_curve() {
        assert_eq!(crash_point(0.0), 1.0);
        assert_eq!(crash_point(50.0), 1.99);
        assert_eq!(crash_point(99.99), 10_000.0);
    }

    #[test]
    fn roulette_zero_loses_even_money() {
        let g = Game::parse("roulette", &json!({"bet_type": "even"})).ok();
        let Some(g) = g else {
            panic!("roulette parses");
        };
        let (won, _, result) = g.play(1.0, |_| 0.0);
        assert_eq!(result["number"], 0);
        assert!(!won);
    }

    #[test]
    fn plinko_tables_have_rows_plus_one_slots() {
        for rows in [8, 12, 16] {
            for risk in [Risk::Low, Risk::Medium, Risk::High] {
                assert_eq!(plinko_table(rows, risk).len(), rows + 1);
            }
        }
    }
}
