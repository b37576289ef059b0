"""`torch.nn.modules`: where PyTorch's layer classes live by kind (`torch.nn.modules.linear.Linear`, ...), as
programs name them, for example in the allow-list of `torch.serialization.safe_globals`. The same classes as
`lamina.nn`'s."""

from types import SimpleNamespace

from lamina import nn

activation = SimpleNamespace(ReLU=nn.ReLU, LeakyReLU=nn.LeakyReLU, ELU=nn.ELU, GELU=nn.GELU, SiLU=nn.SiLU,
                             Sigmoid=nn.Sigmoid, Tanh=nn.Tanh, Softmax=nn.Softmax, LogSoftmax=nn.LogSoftmax,
                             MultiheadAttention=nn.MultiheadAttention)
container = SimpleNamespace(Sequential=nn.Sequential, ModuleList=nn.ModuleList, ModuleDict=nn.ModuleDict)
conv = SimpleNamespace(Conv1d=nn.Conv1d, Conv2d=nn.Conv2d, ConvTranspose2d=nn.ConvTranspose2d)
dropout = SimpleNamespace(Dropout=nn.Dropout, Dropout2d=nn.Dropout2d)
linear = SimpleNamespace(Linear=nn.Linear, Identity=nn.Identity, NonDynamicallyQuantizableLinear=nn.Linear)
module = SimpleNamespace(Module=nn.Module)
normalization = SimpleNamespace(LayerNorm=nn.LayerNorm, GroupNorm=nn.GroupNorm)
batchnorm = SimpleNamespace(BatchNorm1d=nn.BatchNorm1d, BatchNorm2d=nn.BatchNorm2d)
rnn = SimpleNamespace(RNN=nn.RNN, LSTM=nn.LSTM, GRU=nn.GRU, RNNCell=nn.RNNCell, LSTMCell=nn.LSTMCell,
                      GRUCell=nn.GRUCell)
sparse = SimpleNamespace(Embedding=nn.Embedding)
transformer = SimpleNamespace(TransformerEncoder=nn.TransformerEncoder,
                              TransformerEncoderLayer=nn.TransformerEncoderLayer, Transformer=nn.Transformer)
