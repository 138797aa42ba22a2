import numpy as np
for cond in "cb":
  for seed in range(6):
    d=np.load(f"/tmp/af_diag/{cond}_{seed}.npz"); x=d["x"].astype(np.float64); y=d["y"]
    sd=x.std(-1); ptp=np.ptp(x,-1)
    z=(x-x.mean(-1,keepdims=True))/(sd[...,None]+1e-3)
    flat=(sd<1e-3).any(1)
    maxz=np.abs(z).max(-1).max(1)
    # fraction of samples equal to the record's min or max (railing)
    rail=((x==x.max(-1,keepdims=True))|(x==x.min(-1,keepdims=True))).mean(-1).max(1)
    print(cond,seed,"nan",int((~np.isfinite(x)).any((1,2)).sum()),"AF",round(float(y[:,0].mean()),3),"unread",round(float(np.nanmean(y[:,1])),3),
      "AF&unread",round(float(np.nanmean(y[y[:,0]==1,1])),3),
      "sd med",np.round(np.median(sd,0),3),"sd max",np.round(sd.max(0),2),"sd min",np.round(sd.min(0),4),"flat",int(flat.sum()),
      "maxz>15",int((maxz>15).sum()),"maxz max",round(float(maxz.max()),1),"rail>5%",int((rail>0.05).sum()))
