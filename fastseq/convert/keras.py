def from_keras(x, names=False): raise NotImplementedError
def load_keras(p): raise NotImplementedError
