// A uPlot time-series chart that follows its container's width and takes new data in place.
import { html } from 'htm/preact'
import { useEffect, useRef } from 'preact/hooks'
import uPlot from 'uplot'

/**
 * @param {{ title: string, series: Array<{ label: string, stroke: string, unit?: string }>,
 *   data: Array<Array<number|null>>, height?: number }} props
 */
export function Chart({ title, series, data, height = 180 }) {
  const box = useRef(null)
  const plot = useRef(null)

  useEffect(() => {
    const el = box.current
    const opts = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: '#888', grid: { stroke: 'rgba(128,128,128,0.15)' } },
        { stroke: '#888', grid: { stroke: 'rgba(128,128,128,0.15)' }, size: 56 },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: 2,
          spanGaps: false,
          points: { show: false },
        })),
      ],
    }
    plot.current = new uPlot(opts, data, el)
    const ro = new ResizeObserver(() => {
      plot.current?.setSize({ width: Math.max(200, el.clientWidth), height })
    })
    ro.observe(el)
    return () => {
      ro.disconnect()
      plot.current?.destroy()
      plot.current = null
    }
    // The series are fixed per chart; data updates go through setData below.
  }, [])

  useEffect(() => {
    plot.current?.setData(data)
  }, [data])

  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div class="chart-box" ref=${box}></div>
  </figure>`
}
