"""Optimizer steps as formulas, CS231n's ``optim.py``: ``next_w, config = rule(w, dw, config)``.

``config`` holds the hyperparameters and the rule's state for one parameter array; the state
(velocity, moments, step count) is created on the first call. Neither function writes into w.
"""


def sgd_step(w, dw, config):
    """SGD with momentum, PyTorch's form (momentum 0: plain SGD):

        g = dw + weight_decay w
        v <- momentum v + g
        w <- w - lr v

    config: lr (default 0.01), momentum (0), weight_decay (0); state: velocity.
    """
    lr, momentum, decay = config.get("lr", 0.01), config.get("momentum", 0.0), config.get("weight_decay", 0.0)
    g = dw + decay * w
    velocity = momentum * config.get("velocity", 0 * w) + g
    config["velocity"] = velocity
    next_w = w - lr * velocity
    return next_w, config


def adam_step(w, dw, config):
    """Adam (Kingma & Ba 2015, Algorithm 1):

        g = dw + weight_decay w
        t <- t + 1
        m <- b1 m + (1 - b1) g                  running mean of g
        v <- b2 v + (1 - b2) g^2                running mean of g^2
        m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)      (m and v start at 0: undo that bias)
        w <- w - lr m_hat / (sqrt(v_hat) + eps)

    config: lr (default 1e-3), betas ((0.9, 0.999)), eps (1e-8), weight_decay (0); state: m, v, t.
    """
    lr, (b1, b2) = config.get("lr", 1e-3), config.get("betas", (0.9, 0.999))
    eps, decay = config.get("eps", 1e-8), config.get("weight_decay", 0.0)
    g = dw + decay * w
    t = config.get("t", 0) + 1
    m = b1 * config.get("m", 0 * w) + (1 - b1) * g
    v = b2 * config.get("v", 0 * w) + (1 - b2) * g ** 2
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    next_w = w - lr * m_hat / (v_hat ** 0.5 + eps)
    config.update(t=t, m=m, v=v)
    return next_w, config


def rmsprop_step(w, dw, config):
    """RMSprop as PyTorch's torch.optim.RMSprop:

        g = dw + weight_decay w
        v <- alpha v + (1 - alpha) g^2                       (v starts at 0; no bias correction)
        centered: m <- alpha m + (1 - alpha) g,  v_tilde = v - m^2   (else v_tilde = v)
        d = sqrt(v_tilde) + eps                              (eps outside the square root)
        momentum > 0: b <- momentum b + g / d,  w <- w - lr b;   else w <- w - lr g / d

    config: lr (default 1e-2), alpha (0.99), eps (1e-8), momentum (0), centered (False),
    weight_decay (0); state: v, m, b.
    """
    lr, alpha, eps = config.get("lr", 1e-2), config.get("alpha", 0.99), config.get("eps", 1e-8)
    momentum, decay = config.get("momentum", 0.0), config.get("weight_decay", 0.0)
    g = dw + decay * w
    v = alpha * config.get("v", 0 * w) + (1 - alpha) * g ** 2
    config["v"] = v
    v_tilde = v
    if config.get("centered", False):
        m = alpha * config.get("m", 0 * w) + (1 - alpha) * g
        config["m"] = m
        v_tilde = v - m ** 2
    step = g / (v_tilde ** 0.5 + eps)
    if momentum > 0:
        step = momentum * config.get("b", 0 * w) + step
        config["b"] = step
    next_w = w - lr * step
    return next_w, config
