"""Symbolic-regression engines behind one sklearn-shaped interface, and the one set of search settings.

    engine = make_engine("operon", max_complexity=30, generations=200)
    engine.fit(X, y, feature_names)        # returns the engine
    engine.pareto_front_                   # [Equation], simplest first, each with held-out R²
    engine.best_                           # the chosen Equation (``l2o.distill.select.choose_by_r2``)
    engine.predict(X), engine.score(X, y)  # the chosen equation's predictions and R²

Engines: ``operon`` (pyoperon, the default: embedded, offline), ``gplearn``, ``pysr`` (PySRRegressor,
imported lazily; it needs Julia and SymbolicRegression.jl). Every engine draws from one operator set,
``OPERATORS``, keeping what it supports. A fraction ``holdout`` of the rows (seeded) is held out for R²,
and a fraction ``validation`` of the rest is kept from the search to choose the equation: an equation
can fit every row it was searched on and blow up on a new one (sinh of an input beyond those seen).
The best equation is chosen by the rule of ``l2o.distill.select`` on those validation rows. Engines
stop early when a fit is exact.

``SearchConfig`` holds the search settings every caller uses (the CLI, the Ray pipeline's Tune trials,
the REST service); its defaults are the engines' defaults, sized to finish in minutes on a distillation
dataset (12,000 rows × 18 columns: about 2 minutes on one core) and budgeted by generations, not by time,
so that one seed gives one result. Settings given as several values (``max_complexity=(10, 20)``) are
searched: every combination is one search (a Tune trial on Ray), and their fronts are pooled.
"""

from __future__ import annotations

import abc
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from l2o.config import option
from l2o.expr import Equation, EquationError, parse_equation, predict

OPERATORS = ("add", "sub", "mul", "div", "tanh", "asinh", "sinh", "exp", "sign", "abs", "square", "cube",
             "log", "sqrt", "pow")
DEFAULT_OPERATORS = ("add", "sub", "mul", "div", "tanh", "exp", "abs", "square", "sqrt")
ENGINES = ("operon", "gplearn", "pysr")
SEARCHED = ("operators", "max_complexity", "population", "generations")  # the settings that take several values


@dataclass(frozen=True)
class SearchConfig:
    engine: str = option("operon", f"symbolic-regression engine: one of {', '.join(ENGINES)}")
    operators: tuple[tuple[str, ...], ...] = option((DEFAULT_OPERATORS,),
                                                    f"operator set, comma-separated from {','.join(OPERATORS)}; "
                                                    "several sets, separated by ';', are searched")
    max_complexity: tuple[int, ...] = option((20,), "largest equation in nodes; several values are searched")
    population: tuple[int, ...] = option((500,), "population of the search; several values are searched")
    generations: tuple[int, ...] = option((100,), "generations of the search; several values are searched")
    time_limit: float | None = option(None, "seconds per search at most; unset: the generations alone bound it")
    holdout: float = option(0.2, "fraction of rows held out for R² (never searched nor fitted on)")
    validation: float = option(0.15, "fraction of the other rows kept from the search to choose on")
    seed: int = option(0, "seed of the search and of which rows it holds out")
    threads: int = option(0, "threads of each search; 0: torch's thread count (the result does not depend on it)")
    features: tuple[str, ...] | None = option(None, "input features; unset: what the source model reads and the "
                                                    "memory an LSTM keeps (l2o.distill.pipeline.default_features)")
    max_lag: int = option(2, "lags 0..max_lag of each feature")
    columns: tuple[str, ...] | None = option(None, "explicit input columns, instead of features × lags (a table "
                                                   "that is not a recording)")
    target: str = option("raw", "raw (the network's output before squashing) or update (the step taken)")

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; expected one of {', '.join(ENGINES)}")
        for name in SEARCHED:
            if not getattr(self, name):
                raise ValueError(f"{name} needs at least one value")
        for ops in self.operators:
            unknown = [o for o in ops if o not in OPERATORS]
            if unknown:
                raise ValueError(f"unknown operator(s) {unknown}; expected among {OPERATORS}")
        if min(self.max_complexity) < 1 or min(self.population) < 2 or min(self.generations) < 1:
            raise ValueError("max_complexity, population (>= 2) and generations must be positive")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ValueError("time_limit must be positive (or unset)")
        if self.target not in ("raw", "update"):
            raise ValueError(f"target must be raw or update, got {self.target!r}")
        if not 0 <= self.max_lag < 100 or self.threads < 0:
            raise ValueError("max_lag must be in [0, 100), threads >= 0")

    def points(self, threads: int | None = None) -> list[dict[str, Any]]:
        """The keyword arguments of ``make_engine`` for every combination of the searched settings."""
        import torch

        fixed = {"time_limit": self.time_limit, "holdout": self.holdout, "validation": self.validation,
                 "seed": self.seed, "threads": threads or self.threads or torch.get_num_threads()}
        return [{**fixed, "operators": tuple(ops), "max_complexity": mc, "population": pop,
                 "generations": gens}
                for ops, mc, pop, gens in itertools.product(self.operators, self.max_complexity, self.population,
                                                            self.generations)]


_D = SearchConfig()


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    if not np.all(np.isfinite(pred)):
        return -math.inf
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else -math.inf)


def holdout_split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out rows, the rest) of ``n`` rows, shuffled by ``seed``: the engines' split, which constant
    fitting reuses so that, given the search's seed, it never trains on the rows R² is reported on."""
    order = np.random.default_rng(seed).permutation(n)
    n_hold = max(2, int(round(holdout * n)))
    return order[:n_hold], order[n_hold:]


def search_split(n: int, holdout: float, validation: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(held-out, validation, search) rows: the validation rows are a fraction of those not held out."""
    hold, rest = holdout_split(n, holdout, seed)
    n_val = max(2, int(round(validation * len(rest))))
    return hold, rest[:n_val], rest[n_val:]


class Engine(abc.ABC):
    """Shared settings and the fit → Pareto front → best-equation logic; subclasses run a search."""

    name = "engine"
    supported: frozenset[str] = frozenset(OPERATORS)

    def __init__(self, operators: Sequence[str] = DEFAULT_OPERATORS, max_complexity: int = _D.max_complexity[0],
                 population: int = _D.population[0], generations: int = _D.generations[0],
                 time_limit: float | None = _D.time_limit, holdout: float = _D.holdout,
                 validation: float = _D.validation, selection: str = "score", r2_threshold: float = 0.99,
                 seed: int = _D.seed, threads: int = 1, **engine_options: Any):
        unknown = [o for o in operators if o not in OPERATORS]
        if unknown:
            raise ValueError(f"unknown operator(s) {unknown}; expected among {OPERATORS}")
        if selection not in ("score", "accuracy"):
            raise ValueError(f"selection must be 'score' or 'accuracy', got {selection!r}")
        if not 0.0 < holdout < 1.0:
            raise ValueError(f"holdout must be in (0, 1), got {holdout}")
        if not 0.0 < validation < 1.0:
            raise ValueError(f"validation must be in (0, 1), got {validation}")
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.operators = tuple(operators)
        self.max_complexity, self.population, self.generations = max_complexity, population, generations
        self.time_limit, self.holdout, self.validation, self.selection = time_limit, holdout, validation, selection
        self.r2_threshold, self.seed, self.threads, self.engine_options = r2_threshold, seed, threads, engine_options

    @property
    def used_operators(self) -> tuple[str, ...]:
        """The requested operators this engine supports."""
        return tuple(o for o in self.operators if o in self.supported)

    def fit(self, X: np.ndarray, y: np.ndarray, feature_names: Sequence[str]) -> "Engine":
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64).reshape(-1)
        names = [str(n) for n in feature_names]
        if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[1] != len(names):
            raise ValueError(f"X {X.shape}, y {y.shape} and {len(names)} feature names do not agree")
        if X.shape[0] < 10 or not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ValueError("need at least 10 rows, all finite")
        self.feature_names_in_ = names
        hold, val, train = search_split(len(y), self.holdout, self.validation, self.seed)
        t0 = time.perf_counter()
        candidates = self._search(X[train], y[train], names)
        self.seconds_ = time.perf_counter() - t0
        front: dict[str, Equation] = {}
        for expr in candidates:
            pred_train = predict(expr, X[train], names)
            if not np.all(np.isfinite(pred_train)):
                continue
            val_r2 = r2_score(y[val], predict(expr, X[val], names))
            eq = Equation(expr, loss=float(np.mean((pred_train - y[train]) ** 2)),
                          r2=r2_score(y[hold], predict(expr, X[hold], names)),
                          meta={"engine": self.name, "operators": list(self.used_operators),
                                "validation_r2": val_r2 if math.isfinite(val_r2) else None})
            front.setdefault(eq.text, eq)
        if not front:
            raise RuntimeError(f"{self.name} found no equation with finite predictions")
        self.pareto_front_ = _pareto(list(front.values()))
        self.best_ = self._choose(self.pareto_front_)
        return self

    def _choose(self, front: list[Equation]) -> Equation:
        from l2o.distill.select import choose_by_r2

        return choose_by_r2(front, self.selection, self.r2_threshold)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The chosen equation on the rows of ``X`` (columns in the order ``fit`` was given)."""
        return predict(self.best_.expr, np.asarray(X, dtype=np.float64), self.feature_names_in_)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """R² of the chosen equation on (X, y)."""
        return r2_score(np.asarray(y, dtype=np.float64).reshape(-1), self.predict(X))

    @abc.abstractmethod
    def _search(self, X: np.ndarray, y: np.ndarray, names: list[str]) -> list[sp.Expr]:
        """Candidate expressions over the symbols ``names``."""


def _pareto(eqs: list[Equation]) -> list[Equation]:
    """Non-dominated equations by (complexity, training loss), simplest first."""
    front, best = [], math.inf
    for e in sorted(eqs, key=lambda e: (e.complexity, e.loss)):
        if e.loss < best:
            front.append(e)
            best = e.loss
    return front


def _parse_all(texts: Sequence[str], names: list[str]) -> list[sp.Expr]:
    out = []
    for text in texts:
        try:
            out.append(parse_equation(text, variables=names))
        except EquationError:
            continue  # an engine printed something outside the whitelist: not a candidate
    return out


class OperonEngine(Engine):
    """pyoperon's SymbolicRegressor (NSGA-II on R² and length), with local constant optimisation."""

    name = "operon"
    supported = frozenset({"add", "sub", "mul", "div", "tanh", "sinh", "exp", "abs", "square", "log", "sqrt", "pow"})
    _SYMBOLS = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "tanh": "tanh", "sinh": "sinh",
                "exp": "exp", "abs": "abs", "square": "square", "log": "logabs", "sqrt": "sqrtabs", "pow": "powabs"}

    def _search(self, X, y, names):
        from pyoperon.sklearn import SymbolicRegressor

        symbols = ",".join(["constant", "variable", *(self._SYMBOLS[o] for o in self.used_operators)])
        rounds = max(1, min(10, self.generations // 10))  # the search runs in rounds to stop early when exact
        options = dict(allowed_symbols=symbols, objectives=["r2", "length"], max_length=self.max_complexity,
                       population_size=self.population, generations=max(1, self.generations // rounds),
                       random_state=self.seed, n_threads=self.threads, optimizer_iterations=10, epsilon=1e-8,
                       warm_start=True)
        options.update(self.engine_options)
        model = SymbolicRegressor(**options)
        names_ = [f"x{i}" for i in range(len(names))]  # operon prints any name; keep them parseable
        exact = 1e-14 * max(float(np.var(y)), 1e-300)
        start, texts = time.perf_counter(), set()
        for _ in range(rounds):
            if self.time_limit:
                left = self.time_limit - (time.perf_counter() - start)
                if left <= 0:
                    break
                model.set_params(max_time=max(1, int(left)))
            model.fit(X, y)
            texts.update(model.get_model_string(p["tree"], 12, names_) for p in model.pareto_front_)
            if min(p["mean_squared_error"] for p in model.pareto_front_) <= exact:
                break
        self.rounds_ = _ + 1
        subs = {sp.Symbol(a, real=True): sp.Symbol(b, real=True) for a, b in zip(names_, names)}
        return [e.xreplace(subs) for e in _parse_all([t.replace("^", "**") for t in sorted(texts)], names_)]


class GplearnEngine(Engine):
    """gplearn's SymbolicRegressor (parsimony-pressured genetic programming)."""

    name = "gplearn"
    supported = frozenset({"add", "sub", "mul", "div", "tanh", "exp", "abs", "square", "cube", "log", "sqrt",
                           "sign"})

    def _search(self, X, y, names):
        from gplearn.functions import make_function
        from gplearn.genetic import SymbolicRegressor

        def protect(f):
            def g(x):
                with np.errstate(all="ignore"):
                    return np.nan_to_num(f(x), nan=0.0, posinf=1e6, neginf=-1e6)
            return g

        custom = {
            "tanh": make_function(function=protect(np.tanh), name="tanh", arity=1),
            "exp": make_function(function=protect(lambda x: np.exp(np.clip(x, -50, 50))), name="exp", arity=1),
            "square": make_function(function=protect(np.square), name="square", arity=1),
            "cube": make_function(function=protect(lambda x: x ** 3), name="cube", arity=1),
            "sign": make_function(function=protect(np.sign), name="sign", arity=1),
        }
        builtin = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "abs": "abs", "log": "log",
                   "sqrt": "sqrt"}
        functions = [builtin.get(o) or custom[o] for o in self.used_operators]
        options = dict(population_size=self.population, generations=self.generations, function_set=functions,
                       parsimony_coefficient=1e-3 * float(np.var(y)), random_state=self.seed,
                       stopping_criteria=1e-12 * float(np.var(y)),
                       metric="mse", const_range=(-1.0, 1.0), init_depth=(2, 5), n_jobs=self.threads)
        options.update(self.engine_options)
        model = SymbolicRegressor(**options).fit(X, y)
        programs = [model._program]
        if getattr(model, "_programs", None):  # the last generation, for a front
            programs += [p for p in model._programs[-1] if p is not None]
        texts = {_gplearn_text(p, names) for p in programs if p.length_ <= self.max_complexity}
        texts.add(_gplearn_text(model._program, names))
        return _parse_all(sorted(texts), names)


def _gplearn_text(program, names: list[str]) -> str:
    """A gplearn program (prefix notation) as infix text our parser reads."""
    infix = {"add": "+", "sub": "-", "mul": "*", "div": "/"}  # gplearn's div is protected: see meta notes
    nodes, pos = program.program, 0

    def walk() -> str:
        nonlocal pos
        node = nodes[pos]
        pos += 1
        if isinstance(node, (int, np.integer)):
            return names[node]
        if isinstance(node, (float, np.floating)):
            return repr(float(node))
        args = [walk() for _ in range(node.arity)]
        if node.name in infix:
            return f"({args[0]} {infix[node.name]} {args[1]})"
        if node.name == "neg":
            return f"(-{args[0]})"
        return f"{node.name}({', '.join(args)})"

    return walk()


class PySREngine(Engine):
    """PySR's PySRRegressor (SymbolicRegression.jl), imported lazily."""

    name = "pysr"

    def _search(self, X, y, names):
        try:
            from pysr import PySRRegressor
        except Exception as err:  # ImportError, or Julia failing to install/start on import
            raise RuntimeError(
                "the pysr engine needs the pysr package with a working Julia and SymbolicRegression.jl "
                f"({err.__class__.__name__}: {err}). Install with `pip install 'symbolic-l2o[pysr]'` on a "
                "machine with internet access (the first import downloads Julia), or use the docker image; "
                "the operon engine works offline.") from err
        binary = [o for o in self.used_operators if o in ("add", "sub", "mul", "div", "pow")]
        unary = [o for o in self.used_operators if o not in binary]
        symbols = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "^"}
        model = PySRRegressor(binary_operators=[symbols[o] for o in binary], unary_operators=unary,
                              maxsize=self.max_complexity, population_size=self.population,
                              niterations=self.generations, timeout_in_seconds=self.time_limit,
                              random_state=self.seed, deterministic=True, parallelism="serial",
                              **self.engine_options)
        model.fit(X, y, variable_names=names)
        return _parse_all([str(e) for e in model.equations_["sympy_format"]], names)


def make_engine(name: str = "operon", **settings: Any) -> Engine:
    """An engine by name with its settings (see ``Engine.__init__``; extra keywords go to the engine)."""
    classes = {"operon": OperonEngine, "gplearn": GplearnEngine, "pysr": PySREngine}
    if name not in classes:
        raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}")
    return classes[name](**settings)
