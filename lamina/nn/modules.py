"""`torch.nn.modules`: where PyTorch's layer classes live by kind (`torch.nn.modules.linear.Linear`, ...), as
programs name them, for example in the allow-list of `torch.serialization.safe_globals`. The same classes as
`lamina.nn`'s."""

from types import SimpleNamespace

from lamina import nn

activation = SimpleNamespace(ReLU=nn.ReLU, LeakyReLU=nn.LeakyReLU, ELU=nn.ELU, GELU=nn.GELU, SiLU=nn.SiLU,
                             Sigmoid=nn.Sigmoid, Tanh=nn.Tanh, Softmax=nn.Softmax, LogSoftmax=nn.LogSoftmax,
                             MultiheadAttention=nn.MultiheadAttention, ReLU6=nn.ReLU6, Hardtanh=nn.Hardtanh,
                             Softplus=nn.Softplus, SELU=nn.SELU, CELU=nn.CELU, Mish=nn.Mish, Hardswish=nn.Hardswish,
                             Hardsigmoid=nn.Hardsigmoid, LogSigmoid=nn.LogSigmoid, Softmin=nn.Softmin,
                             Softsign=nn.Softsign, Tanhshrink=nn.Tanhshrink, Threshold=nn.Threshold, GLU=nn.GLU,
                             PReLU=nn.PReLU)
container = SimpleNamespace(Sequential=nn.Sequential, ModuleList=nn.ModuleList, ModuleDict=nn.ModuleDict,
                            ParameterList=nn.ParameterList, ParameterDict=nn.ParameterDict)
conv = SimpleNamespace(Conv1d=nn.Conv1d, Conv2d=nn.Conv2d, ConvTranspose1d=nn.ConvTranspose1d,
                       ConvTranspose2d=nn.ConvTranspose2d)
distance = SimpleNamespace(CosineSimilarity=nn.CosineSimilarity, PairwiseDistance=nn.PairwiseDistance)
instancenorm = SimpleNamespace(InstanceNorm1d=nn.InstanceNorm1d, InstanceNorm2d=nn.InstanceNorm2d)
padding = SimpleNamespace(ConstantPad1d=nn.ConstantPad1d, ConstantPad2d=nn.ConstantPad2d, ZeroPad1d=nn.ZeroPad1d,
                          ZeroPad2d=nn.ZeroPad2d, ReflectionPad1d=nn.ReflectionPad1d,
                          ReflectionPad2d=nn.ReflectionPad2d, ReplicationPad1d=nn.ReplicationPad1d,
                          ReplicationPad2d=nn.ReplicationPad2d)
pixelshuffle = SimpleNamespace(PixelShuffle=nn.PixelShuffle, PixelUnshuffle=nn.PixelUnshuffle)
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
