"""Train data seed D with init/order seed S; options: lr schedule. Print per-epoch real AUROC (diagnostic) and per-patient outputs at the end."""
import sys, numpy as np, torch, argparse
from sklearn.metrics import roc_auc_score
from cardiosim.sim2real import train as T
T.set_threads(); nn=torch.nn
ap=argparse.ArgumentParser(); ap.add_argument("--cond",default="c"); ap.add_argument("--data",type=int); ap.add_argument("--init",type=int)
ap.add_argument("--epochs",type=int,default=6); ap.add_argument("--lr",type=float,default=3e-3); ap.add_argument("--sched",default="const")
ap.add_argument("--perpat",action="store_true"); ap.add_argument("--drop",default="")
a=ap.parse_args()
b = T.get_budget("full").for_task("af")
te=np.load("/tmp/af_diag/test.npz"); xte=te["x"]; yte=te["y"]; g=te["groups"]
d=np.load(f"/tmp/af_diag/{a.cond}_{a.data}.npz"); x,y=d["x"],d["y"]
if a.drop:
    keep=np.ones(len(x),bool); keep[[int(i) for i in a.drop.split(",")]]=False; x,y=x[keep],y[keep]
seed=a.init
model=T.make_model("af",2,2,b,seed); torch.manual_seed(seed); rng=np.random.default_rng(np.random.SeedSequence([seed,99]))
xt=torch.as_tensor(x); yt=torch.as_tensor(y); opt=torch.optim.Adam(model.parameters(),lr=a.lr)
nb=len(range(0,len(x)-1,b.batch)); total=nb*a.epochs; step=0
aucs=[]
for ep in range(a.epochs):
    model.train(); order=rng.permutation(len(xt))
    for i in range(0,len(order)-1,b.batch):
        idx=torch.as_tensor(order[i:i+b.batch])
        if len(idx)<2: continue
        if a.sched=="cos":
            for pg in opt.param_groups: pg["lr"]=a.lr*0.5*(1+np.cos(np.pi*step/total))
        xb,yb=xt[idx],yt[idx]; lo=model(xb); ok=torch.isfinite(yb)
        loss=nn.functional.binary_cross_entropy_with_logits(lo[ok],yb[ok]); opt.zero_grad(); loss.backward(); opt.step(); step+=1
    p=T.predict(model,xte,"cpu")[:,0]; aucs.append(roc_auc_score(yte,p))
print(f"{a.cond} data={a.data} init={a.init} ep={a.epochs} lr={a.lr} {a.sched}: te_auc per epoch", " ".join(f"{v:.3f}" for v in aucs), f"called={np.mean(p>=.5):.2f}")
if a.perpat:
    for gg in sorted(set(g)):
        m=g==gg
        print(f"  patient {gg}: n={m.sum()} AF={int(yte[m].sum())} mean p(AF|AF)={p[m&(yte==1)].mean() if (m&(yte==1)).any() else np.nan:.3f} mean p(AF|sinus)={p[m&(yte==0)].mean() if (m&(yte==0)).any() else np.nan:.3f} called AF|sinus={np.mean(p[m&(yte==0)]>=.5) if (m&(yte==0)).any() else np.nan:.2f}")
    torch.save(model.state_dict(),f"/tmp/af_diag/m_{a.cond}_{a.data}_{a.init}_{a.sched}{a.epochs}.pt")
